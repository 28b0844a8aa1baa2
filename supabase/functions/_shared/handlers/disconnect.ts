import { HttpError } from "../http.ts";
import type { FunctionHandler } from "../serve.ts";

/** Placeholder until implemented. */
export const disconnect: FunctionHandler = () => {
  return Promise.reject(new HttpError(501, "not_implemented", "calendar-disconnect is not implemented yet"));
};
