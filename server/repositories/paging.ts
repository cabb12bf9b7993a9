import { invalidArgument } from "../errors.js";

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

/** What a list request asks for, already checked. */
export interface PageRequest {
  limit: number;
  /** The last key of the previous page; lists continue strictly after it. */
  after: string | undefined;
}

/** Turns the proto Paging into a PageRequest, refusing tokens this server did not issue. */
export function pageRequest(paging: { limit: number; pageToken: string } | undefined): PageRequest {
  const limit = paging?.limit ? paging.limit : DEFAULT_PAGE_SIZE;
  if (limit > MAX_PAGE_SIZE) throw invalidArgument(`invalid request: paging.limit: must be at most ${MAX_PAGE_SIZE}`);
  const token = paging?.pageToken ?? "";
  if (token === "") return { limit, after: undefined };
  const decoded = Buffer.from(token, "base64url").toString("utf8");
  // A key is an id this server stored, so a NUL (which PostgreSQL cannot compare text with) means a forged token.
  if (!decoded.startsWith("k:") || decoded.includes("\u0000") || Buffer.from(decoded, "utf8").toString("base64url") !== token) {
    throw invalidArgument("invalid request: paging.page_token: not a token this server issued");
  }
  return { limit, after: decoded.slice(2) };
}

/**
 * Cuts one page out of `limit + 1` rows ordered by key: the extra row only tells
 * that there is a next page, whose token is the key of the page's last row.
 */
export function toPage<T>(rows: T[], limit: number, key: (row: T) => string): { items: T[]; nextPageToken: string } {
  if (rows.length <= limit) return { items: rows, nextPageToken: "" };
  const items = rows.slice(0, limit);
  return { items, nextPageToken: Buffer.from(`k:${key(items[items.length - 1]!)}`, "utf8").toString("base64url") };
}
