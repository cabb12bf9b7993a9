/**
 * Shell completion for metalctl, generated from the command map: every
 * command path and alias, the flags of each command (with the values of flags
 * that have fixed options, such as -o), and the global flags before a command.
 * The data is embedded in the script, so a Tab costs no metalctl start.
 */

/** What completion needs of a command: oclif's cached command has all of it. */
export interface CompletableCommand {
  id: string;
  aliases?: string[];
  hiddenAliases?: string[];
  hidden?: boolean;
  flags: Record<string, { type: string; char?: string; options?: readonly string[]; allowNo?: boolean; hidden?: boolean }>;
  args: Record<string, { options?: readonly string[] }>;
}

type Flags = CompletableCommand["flags"];

/** "--output=table,wide,json,yaml -o=table,... --project= --debug": "=" marks a flag that takes a value, options follow it. */
export function flagSpec(flags: Flags, skip?: ReadonlySet<string>): string {
  // --help goes with the global flags, once.
  const out: string[] = skip ? [] : ["--help"];
  for (const [name, f] of Object.entries(flags)) {
    if (f.hidden || skip?.has(name)) continue;
    const value = f.type === "option" ? `=${(f.options ?? []).join(",")}` : "";
    out.push(`--${name}${value}`);
    if (f.char) out.push(`-${f.char}${value}`);
    if (f.type === "boolean" && f.allowNo) out.push(`--no-${name}`);
  }
  return out.join(" ");
}

/** One line per command path ("machine list|spec"); an alias points at its command's line ("ms ls|=machine list"). */
export function completionData(commands: readonly CompletableCommand[], globalFlags: Flags = {}): string {
  // Every command takes the global flags; the script adds them once instead of on every line.
  const global = new Set(Object.keys(globalFlags));
  const lines: string[] = [];
  const seen = new Set<string>();
  for (const c of [...commands].sort((a, b) => a.id.localeCompare(b.id))) {
    if (c.hidden) continue;
    const path = c.id.split(":").join(" ");
    if (seen.has(path)) continue;
    seen.add(path);
    const positional = Object.values(c.args).flatMap((a) => a.options ?? []);
    lines.push(`${path}|${flagSpec(c.flags, global)}${positional.length > 0 ? ` @${positional.join(",")}` : ""}`);
    for (const alias of [...(c.aliases ?? []), ...(c.hiddenAliases ?? [])]) {
      const a = alias.split(":").join(" ");
      if (seen.has(a)) continue;
      seen.add(a);
      lines.push(`${a}|=${path}`);
    }
  }
  return lines.join("\n");
}

/**
 * The bash script (zsh runs it through bashcompinit). It completes after
 * `metalctl` and after `npx metalctl` (the README's way of running it), the
 * latter only when no other completion for npx is installed.
 */
export function completionScript(shell: "bash" | "zsh", commands: readonly CompletableCommand[], globalFlags: Flags): string {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const body = `# metalctl ${shell} completion: eval "$(metalctl completion ${shell})"
__metalctl_data=${quote(completionData(commands, globalFlags))}
__metalctl_global=${quote(flagSpec(globalFlags))}

# The spec line of a command path (aliases resolved), or nothing.
__metalctl_spec() {
  local nl=$'\n' rest
  rest="$nl$__metalctl_data$nl"
  [[ "$rest" == *"$nl$1|"* ]] || return 1
  rest="\${rest#*"$nl$1|"}"
  rest="\${rest%%"$nl"*}"
  if [[ "$rest" == =* ]]; then __metalctl_spec "\${rest#=}"; else printf '%s' "$rest"; fi
}

# Whether a path is a command or leads to one (a topic).
__metalctl_known() {
  local nl=$'\\n'
  [[ "$nl$__metalctl_data" == *"$nl$1|"* || "$nl$__metalctl_data" == *"$nl$1 "* ]]
}

# The options of a flag in a spec: prints them (maybe nothing) and succeeds when the flag takes a value.
__metalctl_flag_values() {
  local f
  for f in $1; do
    case "$f" in
      "$2="*) f="\${f#*=}"; printf '%s' "\${f//,/ }"; return 0 ;;
    esac
  done
  return 1
}

# $1: the index of the first word after the program name.
__metalctl_complete() {
  local first=$1 cur="\${COMP_WORDS[COMP_CWORD]}" path="" spec="$__metalctl_global" want="" wanted="" i w line name next="" values positional
  for ((i=first; i<COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ -n "$want" ]]; then want=""; continue; fi
    if [[ "$w" == -* ]]; then
      if [[ "$w" != *=* ]] && __metalctl_flag_values "$spec $__metalctl_global" "$w" >/dev/null; then want=1; wanted="$w"; fi
      continue
    fi
    if __metalctl_known "\${path:+$path }$w"; then
      path="\${path:+$path }$w"
      spec="$(__metalctl_spec "$path") $__metalctl_global"
    fi
  done
  if [[ -n "$want" ]]; then
    values="$(__metalctl_flag_values "$spec" "$wanted")"
    if [[ -n "$values" ]]; then COMPREPLY=($(compgen -W "$values" -- "$cur"))
    elif [[ "$wanted" == "-f" || "$wanted" == "--file" || "$wanted" == "-i" || "$wanted" == "--identity" ]]; then COMPREPLY=($(compgen -f -- "$cur"))
    else COMPREPLY=()
    fi
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    local flags="" f
    for f in $spec; do [[ "$f" == @* ]] || flags+=" \${f%%=*}"; done
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return 0
  fi
  while IFS= read -r line; do
    name="\${line%%|*}"
    if [[ -z "$path" ]]; then w="\${name%% *}"
    elif [[ "$name" == "$path "* ]]; then name="\${name#"$path "}"; w="\${name%% *}"
    else continue
    fi
    [[ " $next " == *" $w "* ]] || next+=" $w"
  done <<< "$__metalctl_data"
  if [[ -z "\${next// /}" && -n "$path" ]]; then
    # A complete command: only an argument with fixed values (completion bash|zsh) is offered; ids are not guessed.
    for w in $spec; do [[ "$w" == @* ]] && positional="\${w#@}"; done
    next="\${positional//,/ }"
  fi
  COMPREPLY=($(compgen -W "$next" -- "$cur"))
}

_metalctl() { __metalctl_complete 1; }
_metalctl_npx() {
  if [[ "\${COMP_WORDS[1]}" == metalctl && $COMP_CWORD -ge 2 ]]; then __metalctl_complete 2
  elif [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W metalctl -- "\${COMP_WORDS[1]}"))
  else COMPREPLY=()
  fi
}
complete -F _metalctl metalctl
complete -p npx >/dev/null 2>&1 || complete -F _metalctl_npx npx
`;
  return shell === "zsh" ? `autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n${body}` : body;
}
