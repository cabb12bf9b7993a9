/**
 * Text a daemon read from hardware or a tool (an error of FRR or ipmitool, a
 * FRU field) made safe to send: the control plane refuses control characters
 * other than tab, line feed and carriage return in every string, so each is
 * replaced rather than have a whole report refused.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "?");
}
