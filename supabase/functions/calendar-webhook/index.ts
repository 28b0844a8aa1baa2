import { webhook } from "../_shared/handlers/webhook.ts";
import { serve } from "../_shared/serve.ts";

serve(webhook);
