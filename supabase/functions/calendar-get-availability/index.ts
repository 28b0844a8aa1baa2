import { getAvailability } from "../_shared/handlers/get-availability.ts";
import { serve } from "../_shared/serve.ts";

serve(getAvailability);
