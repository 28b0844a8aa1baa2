import { authCallback } from "../_shared/handlers/auth-callback.ts";
import { serve } from "../_shared/serve.ts";

serve(authCallback);
