/**
 * The metric names a PromQL expression (or a Grafana query such as
 * label_values(metric, label)) refers to: enough to check dashboards and
 * alert rules against what the server exports, not a PromQL parser.
 */
const KEYWORDS = new Set(["and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "inf", "nan", "atan2"]);

export function metricNamesOf(expr: string): string[] {
  const names = new Set<string>();
  // Grafana's label_values(metric{...}, label): the label is not a metric.
  let rest = expr.replace(/label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?[^,)]*(?:,\s*[a-zA-Z_][a-zA-Z0-9_]*)?\s*\)/g, (_, metric: string | undefined) => {
    if (metric) names.add(metric);
    return " ";
  });
  rest = rest
    // Strings, label matchers, range and subquery selectors, grouping label lists.
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    // Grafana variables ($partition, ${datasource}, $__interval).
    .replace(/\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?/g, " ");
  for (const m of rest.matchAll(/(?<![a-zA-Z0-9_:.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const word = m[0];
    const after = rest.slice((m.index ?? 0) + word.length).trimStart();
    if (after.startsWith("(")) continue; // a function or aggregation
    if (KEYWORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word)) continue;
    names.add(word);
  }
  return [...names];
}
