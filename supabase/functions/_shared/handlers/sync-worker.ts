import { HttpError } from "../http.ts";
import type { FunctionHandler } from "../serve.ts";

/** Placeholder until implemented. */
export const syncWorker: FunctionHandler = () => {
  return Promise.reject(new HttpError(501, "not_implemented", "calendar-sync-worker is not implemented yet"));
};
