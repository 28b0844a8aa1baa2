import { authStart } from "../_shared/handlers/auth-start.ts";
import { serve } from "../_shared/serve.ts";

serve(authStart);
