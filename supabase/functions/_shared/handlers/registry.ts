/**
 * Every deployable function name and the handler behind it. The seed's Google names stay
 * deployable with the same inputs and outputs; they call the same handlers as the canonical,
 * provider-neutral names. The local gateway serves exactly this table.
 */
import type { FunctionHandler } from "../serve.ts";
import { authCallback } from "./auth-callback.ts";
import { authConfirm } from "./auth-confirm.ts";
import { authStart } from "./auth-start.ts";
import { disconnect } from "./disconnect.ts";
import { getAvailability } from "./get-availability.ts";
import { listCalendars } from "./list-calendars.ts";
import { selectCalendar } from "./select-calendar.ts";
import { syncAppointment } from "./sync-appointment.ts";
import { syncWorker } from "./sync-worker.ts";
import { webhook } from "./webhook.ts";

export const FUNCTIONS: Readonly<Record<string, FunctionHandler>> = {
  "calendar-auth-start": authStart,
  "calendar-auth-callback": authCallback,
  "calendar-auth-confirm": authConfirm,
  "calendar-list-calendars": listCalendars,
  "calendar-get-availability": getAvailability,
  "calendar-sync-appointment": syncAppointment,
  "calendar-sync-worker": syncWorker,
  "calendar-disconnect": disconnect,
  "calendar-select-calendar": selectCalendar,
  "calendar-webhook": webhook,
  "google-calendar-auth-start": authStart,
  "google-calendar-auth-callback": authCallback,
  "google-calendar-list-calendars": listCalendars,
  "google-calendar-get-availability": getAvailability,
  "google-calendar-sync-appointment": syncAppointment,
};
