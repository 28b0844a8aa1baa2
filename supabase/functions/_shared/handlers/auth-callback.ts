import { HttpError } from "../http.ts";
import type { FunctionHandler } from "../serve.ts";

/** Placeholder until implemented. */
export const authCallback: FunctionHandler = () => {
  return Promise.reject(
    new HttpError(501, "not_implemented", "calendar-auth-callback is not implemented yet"),
  );
};
