import { authConfirm } from "../_shared/handlers/auth-confirm.ts";
import { serve } from "../_shared/serve.ts";

serve(authConfirm);
