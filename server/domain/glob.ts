/**
 * Shell-style globs for hardware identifiers: `*` any run, `?` one character,
 * `[abc]` / `[a-z]` / `[!abc]` one character of (not of) a set. Everything
 * else matches itself.
 */
export function globError(glob: string): string | undefined {
  for (let i = 0; i < glob.length; i++) {
    if (glob[i] === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end === -1) return `"${glob}" has a "[" without a closing "]"`;
      i = end;
    } else if (glob[i] === "]") {
      return `"${glob}" has a "]" without an opening "["`;
    }
  }
  return undefined;
}

const cache = new Map<string, RegExp>();

export function globToRegExp(glob: string): RegExp {
  let re = cache.get(glob);
  if (re) return re;
  let src = "^";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*") src += ".*";
    else if (c === "?") src += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith("!");
      if (negate) body = body.slice(1);
      src += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = end;
    } else src += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  re = new RegExp(`${src}$`, "s");
  if (cache.size > 1000) cache.clear();
  cache.set(glob, re);
  return re;
}

/** Whether `value` matches `glob`; an empty glob matches everything. */
export function globMatch(glob: string, value: string): boolean {
  return glob === "" || globToRegExp(glob).test(value);
}
