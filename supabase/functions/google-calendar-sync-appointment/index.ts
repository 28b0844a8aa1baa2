import { syncAppointment } from "../_shared/handlers/sync-appointment.ts";
import { serve } from "../_shared/serve.ts";

serve(syncAppointment);
