/**
 * zod schemas for the Microsoft identity platform and Graph v1.0 answers we read
 * (docs/providers/microsoft.md B1-B7). They check only the fields we use and let the rest through,
 * so an additive change at Microsoft never breaks a call.
 */
import { z } from "zod";

/** `dateTimeTimeZone` (B5): local wall time without offset, up to 7 fractional digits, and a zone name. */
export const graphDateTimeZone = z.object({
  dateTime: z.string().min(1),
  timeZone: z.string().min(1),
});

/**
 * Graph's error envelope (B2.1): `{"error":{"code","message","innerError"}}`. Outlook answers carry
 * Exchange codes (`ErrorItemNotFound`), other workloads camelCase ones (`itemNotFound`); the inner
 * object is spelled `innerError` in practice and `innererror` in the reference, so both are read.
 */
export const graphErrorBody = z.object({
  error: z.object({
    code: z.string().optional(),
    message: z.string().optional(),
    innerError: z.object({ code: z.string().optional() }).loose().optional(),
    innererror: z.object({ code: z.string().optional() }).loose().optional(),
  }),
});
export type GraphErrorBody = z.infer<typeof graphErrorBody>;

/** A calendar of `GET /me/calendars` (B3). `isDefaultCalendar` names the default calendar, no alias needed. */
export const graphCalendar = z.object({
  id: z.string().min(1),
  name: z.string().default(""),
  canEdit: z.boolean().default(false),
  isDefaultCalendar: z.boolean().optional(),
  owner: z.object({ name: z.string().optional(), address: z.string().optional() }).optional(),
});
export type GraphCalendar = z.infer<typeof graphCalendar>;

/** One page of calendars (B3); `@odata.nextLink` is the absolute URL of the next page, when there is one. */
export const graphCalendarsPage = z.object({
  value: z.array(graphCalendar).default([]),
  "@odata.nextLink": z.url().optional(),
});
export type GraphCalendarsPage = z.infer<typeof graphCalendarsPage>;

/** `freeBusyStatus` values a schedule item or an event's `showAs` may take (B4). */
export const FREE_BUSY_STATUSES = [
  "free",
  "tentative",
  "busy",
  "oof",
  "workingElsewhere",
  "unknown",
] as const;
export type FreeBusyStatus = (typeof FREE_BUSY_STATUSES)[number];

/**
 * A schedule item (B4). Statuses Graph may add later are kept as strings, so that busy.ts can treat
 * what it does not know as busy rather than fail the whole answer.
 */
export const scheduleItem = z.object({
  status: z.string().min(1),
  start: graphDateTimeZone,
  end: graphDateTimeZone,
});
export type ScheduleItem = z.infer<typeof scheduleItem>;

/**
 * One `scheduleInformation` of a getSchedule answer (B4). A schedule Graph could not read carries
 * `error` (`responseCode` "5009" unresolvable, "5016" no mailbox, ...) and `scheduleItems` absent or null.
 */
export const scheduleInformation = z.object({
  scheduleId: z.string(),
  scheduleItems: z.array(scheduleItem).nullish(),
  error: z.object({ message: z.string().optional(), responseCode: z.string().optional() }).loose().nullish(),
});
export type ScheduleInformation = z.infer<typeof scheduleInformation>;

/** `POST /me/calendar/getSchedule` answer (B4). */
export const getScheduleResponse = z.object({ value: z.array(scheduleInformation) });
export type GetScheduleResponse = z.infer<typeof getScheduleResponse>;

/**
 * The event fields we read after a create, PATCH or GET (B6, B7). `@odata.etag` is `W/"..."`,
 * `changeKey` the same version without the wrapper; `transactionId` is echoed only when we set it.
 */
export const graphEvent = z.object({
  id: z.string().min(1),
  "@odata.etag": z.string().optional(),
  changeKey: z.string().optional(),
  transactionId: z.string().nullish(),
  subject: z.string().nullish(),
  showAs: z.string().optional(),
  isAllDay: z.boolean().optional(),
  isCancelled: z.boolean().optional(),
  start: graphDateTimeZone.optional(),
  end: graphDateTimeZone.optional(),
});
export type GraphEvent = z.infer<typeof graphEvent>;

/**
 * `GET /me/events/{id}?$select=subject,isCancelled` (B7): the title of one of our own events, read to
 * detect a retitle (inbound/restore.ts), and whether it was cancelled.
 */
export const graphEventTitle = graphEvent.pick({ subject: true, isCancelled: true });
export type GraphEventTitle = z.infer<typeof graphEventTitle>;

/**
 * Token endpoint answer for a code exchange or a refresh (B1.3, B1.4). `refresh_token` comes with
 * `offline_access`, on every refresh a new one (rotation: store it, drop the old one); `id_token` with
 * `openid`. `scope` is space-separated (the documentation's sample shows it URL-encoded).
 */
export const microsoftTokenResponse = z.object({
  access_token: z.string().min(1),
  token_type: z.string().refine((t) => t.toLowerCase() === "bearer", "token_type must be Bearer"),
  expires_in: z.coerce.number().int().positive(),
  scope: z.string().optional(),
  refresh_token: z.string().min(1).optional(),
  id_token: z.string().min(1).optional(),
  ext_expires_in: z.coerce.number().int().optional(),
});
export type MicrosoftTokenResponse = z.infer<typeof microsoftTokenResponse>;

/**
 * Token endpoint error (B1.5): RFC 6749 `error` / `error_description` plus Microsoft's `error_codes`
 * (AADSTS numbers), `suberror`, `claims`, `trace_id`, `correlation_id`, `timestamp`, `error_uri`.
 */
export const aadstsErrorBody = z.object({
  error: z.string().min(1),
  error_description: z.string().optional(),
  error_codes: z.array(z.number().int()).optional(),
  suberror: z.string().optional(),
  claims: z.string().optional(),
  trace_id: z.string().optional(),
  correlation_id: z.string().optional(),
  timestamp: z.string().optional(),
  error_uri: z.string().optional(),
});
export type AadstsErrorBody = z.infer<typeof aadstsErrorBody>;

/**
 * The ID token claims we read (B1.1): `tid` (the account's tenant, which the v2 issuer names), `oid`
 * (the account id in that tenant), `email` / `preferred_username`. Verified by the OAuth layer first.
 */
export const microsoftIdTokenClaims = z.object({
  iss: z.string().min(1),
  tid: z.string().min(1),
  sub: z.string().min(1),
  oid: z.string().optional(),
  email: z.string().optional(),
  preferred_username: z.string().optional(),
});
export type MicrosoftIdTokenClaims = z.infer<typeof microsoftIdTokenClaims>;

/**
 * One page of `GET /me/calendars/{id}/calendarView` (B8) with the fields we `$select`;
 * `@odata.nextLink` is the absolute URL of the next page, when there is one.
 */
export const graphEventsPage = z.object({
  value: z.array(graphEvent),
  "@odata.nextLink": z.url().optional(),
});
export type GraphEventsPage = z.infer<typeof graphEventsPage>;

/**
 * A subscription as `POST /subscriptions` and `PATCH /subscriptions/{id}` answer it (B9.1, B9.6):
 * its id and when it expires (ISO 8601 UTC, seven fractional digits).
 */
export const graphSubscription = z.object({
  id: z.string().min(1),
  expirationDateTime: z.string().min(1),
});
export type GraphSubscription = z.infer<typeof graphSubscription>;

/**
 * An item of a `calendarView/delta` page (B8): an event (an occurrence or exception of a series
 * carries `seriesMasterId`), or `{id, "@removed": {reason}}` for one deleted or moved out of the
 * window. Only the fields inbound sync reads are kept; Graph sends the whole event (delta takes no
 * `$select`) and everything else is dropped here.
 */
export const graphDeltaItem = graphEvent.pick({
  id: true,
  "@odata.etag": true,
  changeKey: true,
  transactionId: true,
  showAs: true,
  isAllDay: true,
  isCancelled: true,
  start: true,
  end: true,
}).extend({
  type: z.string().optional(),
  seriesMasterId: z.string().nullish(),
  "@removed": z.object({ reason: z.string().optional() }).optional(),
});
export type GraphDeltaItem = z.infer<typeof graphDeltaItem>;

/** One `calendarView/delta` page (B8): `@odata.nextLink` while the round has pages, else `@odata.deltaLink`. */
export const graphDeltaPage = z.object({
  value: z.array(graphDeltaItem),
  "@odata.nextLink": z.url().optional(),
  "@odata.deltaLink": z.url().optional(),
});
export type GraphDeltaPage = z.infer<typeof graphDeltaPage>;
