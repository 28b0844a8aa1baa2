import { listCalendars } from "../_shared/handlers/list-calendars.ts";
import { serve } from "../_shared/serve.ts";

serve(listCalendars);
