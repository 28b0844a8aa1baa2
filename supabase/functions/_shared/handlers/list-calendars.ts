import { HttpError } from "../http.ts";
import type { FunctionHandler } from "../serve.ts";

/** Placeholder until implemented. */
export const listCalendars: FunctionHandler = () => {
  return Promise.reject(
    new HttpError(501, "not_implemented", "calendar-list-calendars is not implemented yet"),
  );
};
