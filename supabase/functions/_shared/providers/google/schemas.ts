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
