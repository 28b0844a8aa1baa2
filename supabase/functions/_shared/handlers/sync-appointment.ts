import { HttpError } from "../http.ts";
import type { FunctionHandler } from "../serve.ts";

/** Placeholder until implemented. */
export const syncAppointment: FunctionHandler = () => {
  return Promise.reject(
    new HttpError(501, "not_implemented", "calendar-sync-appointment is not implemented yet"),
  );
};
