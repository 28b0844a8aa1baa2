import { syncWorker } from "../_shared/handlers/sync-worker.ts";
import { serve } from "../_shared/serve.ts";

serve(syncWorker);
