/**
 * Recurrence expansion shared by both sandboxes: a rule (daily / weekly with days / monthly on a day of
 * the month, an interval, and an end by count, by last date or by last instant) turned into the local
 * start dates of its occurrences, and those into instants in the series' time zone, so a 09:00 series
 * stays at 09:00 wall clock across a DST change (Google: "the time zone in which the recurrence is
 * expanded", docs/providers/google.md A5; Graph: the series' start zone, B5).
 *
 * Google's RRULE text (RFC 5545 subset: FREQ=DAILY|WEEKLY|MONTHLY, INTERVAL, COUNT, UNTIL, BYDAY for
 * weekly, BYMONTHDAY for monthly; EXDATE lines) and Graph's `recurrence` (pattern daily | weekly |
 * absoluteMonthly, range endDate | noEnd | numbered) both become a {@link RecurrenceRule}. Anything
 * else (EXRULE, RDATE, BYSETPOS, yearly, relative monthly) is refused by the parsers.
 */
import { eventInstant } from "./time.ts";

/** Days as JavaScript numbers them (0 = Sunday). */
const RFC_DAYS = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"];
const GRAPH_DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/** A parsed recurrence: frequency, step, the days it falls on, and how it ends. */
export interface RecurrenceRule {
  freq: "daily" | "weekly" | "monthly";
  interval: number;
  /** Weekly: days of the week (0 = Sunday); default the start's day. */
  byDay?: number[];
  /** Monthly: day of the month; default the start's. */
  monthDay?: number;
  /** First day of the week weekly intervals count from (0 = Sunday). */
  weekStart: number;
  count?: number;
  /** Last occurrence start allowed, epoch ms (RRULE UNTIL with a time). */
  untilMs?: number;
  /** Last local date allowed, inclusive (RRULE UNTIL as a date, Graph range endDate). */
  untilDate?: string;
  /** Local start dates (`yyyy-mm-dd`) left out (EXDATE). */
  exDates?: string[];
  /** Instants left out, epoch ms (EXDATE with a time). */
  exInstants?: number[];
}

/** Thrown by the parsers for a rule outside the supported subset or malformed. */
export class RecurrenceError extends Error {}

const DAY_MS = 86_400_000;
const dayNumber = (date: string) => Date.parse(`${date}T00:00:00Z`) / DAY_MS;
const dateOf = (n: number) => new Date(n * DAY_MS).toISOString().slice(0, 10);

/** `20260309` or `20260309T140000Z` / `20260309T090000` (read in `zone`) as a date or an instant. */
function rfcDate(value: string, zone: string): { date?: string; ms?: number } {
  const m = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$/.exec(value);
  if (!m) throw new RecurrenceError(`Invalid date value ${value}`);
  const date = `${m[1]}-${m[2]}-${m[3]}`;
  if (m[4] === undefined) return { date };
  const local = `${date}T${m[4]}:${m[5]}:${m[6]}`;
  const ms = m[7] ? Date.parse(`${local}Z`) : eventInstant({ dateTime: local, timeZone: zone }, zone);
  if (ms === undefined || Number.isNaN(ms)) throw new RecurrenceError(`Invalid date value ${value}`);
  return { ms };
}

/**
 * Google's `recurrence` lines as a rule; EXDATE values (`EXDATE;TZID=…:20260316T090000` or
 * `EXDATE;VALUE=DATE:20260316`, comma lists allowed) read in their TZID, else `zone`.
 * @throws RecurrenceError for a missing RRULE, several RRULEs, EXRULE/RDATE or unsupported parts.
 */
export function parseGoogleRecurrence(lines: string[], zone: string): RecurrenceRule {
  const rrules = lines.filter((l) => /^RRULE:/i.test(l));
  if (rrules.length !== 1) throw new RecurrenceError("Exactly one RRULE is supported");
  const rule: RecurrenceRule = { freq: "daily", interval: 1, weekStart: 1 };
  for (const part of rrules[0].slice(6).split(";")) {
    const [k, v = ""] = part.split("=");
    switch (k.toUpperCase()) {
      case "FREQ": {
        const f = v.toLowerCase();
        if (f !== "daily" && f !== "weekly" && f !== "monthly") throw new RecurrenceError(`FREQ=${v}`);
        rule.freq = f;
        break;
      }
      case "INTERVAL":
        rule.interval = positive(v, "INTERVAL");
        break;
      case "COUNT":
        rule.count = positive(v, "COUNT");
        break;
      case "UNTIL": {
        const u = rfcDate(v, "UTC");
        if (u.date) rule.untilDate = u.date;
        else rule.untilMs = u.ms;
        break;
      }
      case "BYDAY":
        rule.byDay = v.split(",").map((d) => {
          const i = RFC_DAYS.indexOf(d.toUpperCase());
          if (i < 0) throw new RecurrenceError(`BYDAY=${v}`);
          return i;
        });
        break;
      case "BYMONTHDAY":
        rule.monthDay = positive(v, "BYMONTHDAY");
        break;
      case "WKST": {
        const i = RFC_DAYS.indexOf(v.toUpperCase());
        if (i < 0) throw new RecurrenceError(`WKST=${v}`);
        rule.weekStart = i;
        break;
      }
      default:
        throw new RecurrenceError(`Unsupported RRULE part ${k}`);
    }
  }
  if (rule.count !== undefined && (rule.untilDate || rule.untilMs !== undefined)) {
    throw new RecurrenceError("COUNT and UNTIL together");
  }
  if (rule.byDay && rule.freq !== "weekly") throw new RecurrenceError("BYDAY is supported for WEEKLY only");
  for (const line of lines) {
    const m = /^EXDATE([^:]*):(.+)$/i.exec(line);
    if (!m) {
      if (!/^RRULE:/i.test(line)) throw new RecurrenceError(`Unsupported recurrence line ${line}`);
      continue;
    }
    const tzid = /TZID=([^;:]+)/i.exec(m[1])?.[1] ?? zone;
    for (const v of m[2].split(",")) {
      const d = rfcDate(v.trim(), tzid);
      if (d.date) (rule.exDates ??= []).push(d.date);
      else (rule.exInstants ??= []).push(d.ms!);
    }
  }
  return rule;
}

/** Graph's `recurrence` resource (B6): the supported pattern and range types. */
export interface GraphRecurrence {
  pattern: {
    type: "daily" | "weekly" | "absoluteMonthly";
    interval: number;
    daysOfWeek?: string[];
    dayOfMonth?: number;
    firstDayOfWeek?: string;
  };
  range: {
    type: "endDate" | "noEnd" | "numbered";
    startDate: string;
    endDate?: string;
    numberOfOccurrences?: number;
    recurrenceTimeZone?: string;
  };
}

/**
 * A Graph `recurrence` as a rule. The series starts on `range.startDate` (Graph's reading: the first
 * occurrence is the first date on or after it that fits the pattern).
 * @throws RecurrenceError for other pattern/range types or missing members.
 */
export function parseGraphRecurrence(r: unknown): { rule: RecurrenceRule; startDate: string } {
  const rec = r as GraphRecurrence | null;
  const p = rec?.pattern;
  const range = rec?.range;
  if (!p || !range || !/^\d{4}-\d{2}-\d{2}$/.test(range.startDate ?? "")) {
    throw new RecurrenceError("recurrence needs a pattern and a range with a startDate");
  }
  const interval = p.interval ?? 1;
  if (!Number.isInteger(interval) || interval < 1) throw new RecurrenceError("pattern.interval must be >= 1");
  const day = (d: string) => {
    const i = GRAPH_DAYS.indexOf(String(d).toLowerCase());
    if (i < 0) throw new RecurrenceError(`Unknown day ${d}`);
    return i;
  };
  const rule: RecurrenceRule = {
    freq: "daily",
    interval,
    weekStart: p.firstDayOfWeek ? day(p.firstDayOfWeek) : 0,
  };
  if (p.type === "weekly") {
    if (!p.daysOfWeek?.length) throw new RecurrenceError("A weekly pattern needs daysOfWeek");
    rule.freq = "weekly";
    rule.byDay = p.daysOfWeek.map(day);
  } else if (p.type === "absoluteMonthly") {
    if (!Number.isInteger(p.dayOfMonth) || p.dayOfMonth! < 1 || p.dayOfMonth! > 31) {
      throw new RecurrenceError("An absoluteMonthly pattern needs dayOfMonth 1..31");
    }
    rule.freq = "monthly";
    rule.monthDay = p.dayOfMonth;
  } else if (p.type !== "daily") throw new RecurrenceError(`Unsupported pattern type ${p.type}`);
  if (range.type === "endDate") {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(range.endDate ?? "")) throw new RecurrenceError("range.endDate missing");
    rule.untilDate = range.endDate;
  } else if (range.type === "numbered") {
    const n = range.numberOfOccurrences;
    if (!Number.isInteger(n) || n! < 1) throw new RecurrenceError("range.numberOfOccurrences must be >= 1");
    rule.count = n;
  } else if (range.type !== "noEnd") throw new RecurrenceError(`Unsupported range type ${range.type}`);
  return { rule, startDate: range.startDate };
}

function positive(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RecurrenceError(`${name}=${v}`);
  return n;
}

/** Safety stop: no series is expanded past this many candidate dates. */
const MAX_STEPS = 20_000;

/**
 * The local dates of a rule's occurrences from `startDate` on, in order, excluding EXDATE dates but
 * counting them against COUNT (RFC 5545: EXDATE removes instances the rule generated). Stops at the
 * rule's end or when `keepGoing(date)` says no.
 */
export function* occurrenceDates(
  rule: RecurrenceRule,
  startDate: string,
  keepGoing: (date: string) => boolean = () => true,
): Generator<string> {
  const first = dayNumber(startDate);
  const startDow = new Date(first * DAY_MS).getUTCDay();
  let emitted = 0;
  const candidates = function* (): Generator<number> {
    if (rule.freq === "daily") {
      for (let i = 0;; i++) yield first + i * rule.interval;
    } else if (rule.freq === "weekly") {
      const days = [...new Set(rule.byDay ?? [startDow])]
        .map((d) => (d - rule.weekStart + 7) % 7).sort((a, b) => a - b);
      const week0 = first - ((startDow - rule.weekStart + 7) % 7);
      for (let w = 0;; w++) {
        for (const off of days) {
          const n = week0 + w * 7 * rule.interval + off;
          if (n >= first) yield n;
        }
      }
    } else {
      const start = new Date(first * DAY_MS);
      const monthDay = rule.monthDay ?? start.getUTCDate();
      for (let i = 0;; i++) {
        const y = start.getUTCFullYear();
        const m = start.getUTCMonth() + i * rule.interval;
        const t = Date.UTC(y, m, monthDay);
        if (new Date(t).getUTCDate() !== monthDay) continue; // no such day that month
        const n = t / DAY_MS;
        if (n >= first) yield n;
      }
    }
  };
  let steps = 0;
  for (const n of candidates()) {
    if (++steps > MAX_STEPS) return;
    const date = dateOf(n);
    if (rule.untilDate !== undefined && date > rule.untilDate) return;
    if (rule.count !== undefined && emitted >= rule.count) return;
    if (!keepGoing(date)) return;
    emitted++;
    if (rule.exDates?.includes(date)) continue;
    yield date;
  }
}

/** One occurrence: its local start date and its start instant (epoch ms). */
export interface Occurrence {
  date: string;
  startMs: number;
}

/**
 * The occurrences of a series whose first start is `startDate` at wall-clock `time` (`hh:mm:ss`, or
 * undefined for all-day, which starts at midnight) in IANA `zone`, starting before `untilMs`. UNTIL
 * with a time and EXDATE instants are applied here.
 */
export function expand(
  rule: RecurrenceRule,
  startDate: string,
  time: string | undefined,
  zone: string,
  untilMs: number,
): Occurrence[] {
  const out: Occurrence[] = [];
  const instant = (date: string) =>
    eventInstant({ dateTime: `${date}T${time ?? "00:00:00"}`, timeZone: zone }, zone)!;
  for (const date of occurrenceDates(rule, startDate, (d) => instant(d) < untilMs)) {
    const startMs = instant(date);
    if (rule.untilMs !== undefined && startMs > rule.untilMs) break;
    if (rule.exInstants?.includes(startMs)) continue;
    out.push({ date, startMs });
  }
  return out;
}
