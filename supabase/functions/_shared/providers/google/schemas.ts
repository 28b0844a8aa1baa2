/**
 * zod schemas for the Google responses we read (docs/providers/google.md A2-A8). They check only the fields
 * we use and let the rest through unvalidated, so an additive change at Google never breaks a call.
 */
import { z } from "zod";

/** Google's JSON error envelope (A2.1): `{"error":{"errors":[{domain,reason,message}],"code","message","status"}}`. */
export const googleErrorEnvelope = z.object({
  error: z.object({
    code: z.number().optional(),
    message: z.string().optional(),
    status: z.string().optional(),
    errors: z.array(
      z.object({
        domain: z.string().optional(),
        reason: z.string().optional(),
        message: z.string().optional(),
      }),
    ).optional(),
    details: z.array(z.object({ reason: z.string().optional() }).loose()).optional(),
  }),
});
export type GoogleErrorEnvelope = z.infer<typeof googleErrorEnvelope>;

/** A calendarList entry (A3): the calendar as this user sees it. Boolean fields are omitted when false. */
export const calendarListEntry = z.object({
  id: z.string().min(1),
  summary: z.string().optional(),
  summaryOverride: z.string().optional(),
  primary: z.boolean().optional(),
  deleted: z.boolean().optional(),
  accessRole: z.string().min(1),
  /** IANA zone of the calendar. */
  timeZone: z.string().optional(),
});
export type CalendarListEntry = z.infer<typeof calendarListEntry>;

/** calendarList.list page (A3). */
export const calendarListPage = z.object({
  items: z.array(calendarListEntry).default([]),
  nextPageToken: z.string().min(1).optional(),
});
export type CalendarListPage = z.infer<typeof calendarListPage>;

const busyPeriod = z.object({ start: z.string(), end: z.string() });

/** freeBusy.query response (A4): per-calendar `busy` intervals and `errors`. */
export const freeBusyResponse = z.object({
  calendars: z.record(
    z.string(),
    z.object({
      busy: z.array(busyPeriod).default([]),
      errors: z.array(z.object({ domain: z.string().optional(), reason: z.string().optional() })).optional(),
    }),
  ).default({}),
});
export type FreeBusyResponse = z.infer<typeof freeBusyResponse>;

const eventDateTime = z.object({
  dateTime: z.string().optional(),
  date: z.string().optional(),
  timeZone: z.string().optional(),
});

/** The Event fields we read (A5). A cancelled (deleted) event may carry little more than its id. */
export const googleEvent = z.object({
  id: z.string().min(1),
  etag: z.string().optional(),
  status: z.string().optional(),
  summary: z.string().optional(),
  start: eventDateTime.optional(),
  end: eventDateTime.optional(),
});
export type GoogleEvent = z.infer<typeof googleEvent>;

/**
 * events.get asked for `fields=summary,status` (A5): the title of one of our own events, read to
 * detect a retitle (inbound/restore.ts), and whether it was deleted. Google omits an empty summary.
 */
export const googleEventTitle = z.object({
  summary: z.string().optional(),
  status: z.string().optional(),
});
export type GoogleEventTitle = z.infer<typeof googleEventTitle>;

/**
 * events.watch answer (A10): the channel. `expiration` is epoch ms, serialised as a string (int64), and
 * `resourceId` is opaque and the same for every channel on one calendar.
 */
export const googleChannel = z.object({
  id: z.string().min(1),
  resourceId: z.string().min(1),
  expiration: z.union([z.string().regex(/^\d+$/), z.number().int()]).transform(Number).optional(),
});
export type GoogleChannel = z.infer<typeof googleChannel>;

/**
 * An event as inbound sync reads it (A5, A9): only what says when it blocks time, nothing that says
 * what it is (the listing asks for these fields only; anything else Google sends is dropped here).
 * A cancelled event may carry nothing but `id`, `etag` and `status`; a cancelled exception of a
 * recurring series also `recurringEventId` and `originalStartTime`. `attendees` is read for the
 * account's own answer only (`self`, `responseStatus`): an invitation it declined does not block.
 */
export const googleChangedEvent = z.object({
  id: z.string().min(1),
  etag: z.string().optional(),
  status: z.string().optional(),
  start: eventDateTime.optional(),
  end: eventDateTime.optional(),
  transparency: z.string().optional(),
  recurringEventId: z.string().optional(),
  attendees: z.array(z.object({ self: z.boolean().optional(), responseStatus: z.string().optional() }))
    .optional(),
});
export type GoogleChangedEvent = z.infer<typeof googleChangedEvent>;

/**
 * One events.list page (A9): `nextPageToken` on every page but the last, `nextSyncToken` on the last
 * only; `timeZone` is the calendar's, in which its all-day events lie.
 */
export const googleEventsPage = z.object({
  items: z.array(googleChangedEvent).default([]),
  nextPageToken: z.string().min(1).optional(),
  nextSyncToken: z.string().min(1).optional(),
  timeZone: z.string().optional(),
});
export type GoogleEventsPage = z.infer<typeof googleEventsPage>;
