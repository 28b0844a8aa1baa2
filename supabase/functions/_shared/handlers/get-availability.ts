import { HttpError } from "../http.ts";
import type { FunctionHandler } from "../serve.ts";

/** Placeholder until implemented. */
export const getAvailability: FunctionHandler = () => {
  return Promise.reject(
    new HttpError(501, "not_implemented", "calendar-get-availability is not implemented yet"),
  );
};
