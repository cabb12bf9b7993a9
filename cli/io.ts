import type { Env } from "./config-file.js";

/**
 * Where a run's output goes and which environment it sees. The binary uses the
 * process's; tests swap it to run commands in-process without touching
 * process.env or the real stdout.
 */
export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Env;
  /** The whole of standard input, for `-f -`. */
  stdin(): Promise<string>;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export const processIo: Io = {
  stdout: (t) => void process.stdout.write(t),
  stderr: (t) => void process.stderr.write(t),
  env: process.env,
  stdin: readStdin,
};

let current: Io = processIo;

export const io = (): Io => current;

export async function withIo<T>(next: Io, fn: () => Promise<T>): Promise<T> {
  const prev = current;
  current = next;
  try {
    return await fn();
  } finally {
    current = prev;
  }
}
