import { disconnect } from "../_shared/handlers/disconnect.ts";
import { serve } from "../_shared/serve.ts";

serve(disconnect);
