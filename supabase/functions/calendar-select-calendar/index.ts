import { selectCalendar } from "../_shared/handlers/select-calendar.ts";
import { serve } from "../_shared/serve.ts";

serve(selectCalendar);
