import { HttpError } from "../http.ts";
import type { FunctionHandler } from "../serve.ts";

/** Placeholder until implemented. */
export const authStart: FunctionHandler = () => {
  return Promise.reject(new HttpError(501, "not_implemented", "calendar-auth-start is not implemented yet"));
};
