/**
 * What ends a cancelled build step's processes under the rootless BuildKit daemon.
 *
 * Without a process sandbox (a container without privileges may not mount a new /proc),
 * BuildKit's steps share the daemon's PID namespace, and without a delegated cgroup runc
 * can kill only a step's first process: on a cancel, a step run as `sh -c "…"` loses its
 * shell, but the shell's children run on (runc, a subreaper, adopts them and waits),
 * holding CPU, memory, the step's mounts and the build's slot. In a PID namespace of its
 * own they would end with that first process; this loop gives them that end.
 *
 * It runs beside buildkitd in the daemon's own container and namespaces (so it may signal
 * the steps, and nothing outside that container), once a second. For each `runc` process,
 * the container it runs is its last argument, and runc's state file names the container's
 * first process; when that process is gone (or a zombie) while runc still has children,
 * the step has ended and every descendant of that runc is killed. Nothing that does not
 * descend from a runc whose step has ended is touched. POSIX sh, sed, tr, tail and awk
 * only: BuildKit's image is Alpine's busybox.
 */

/**
 * The shell program the daemon's container runs under rootlesskit: starts the loop in the
 * background, then becomes buildkitd with the arguments after it ("$@"). A pass with no
 * runc running is one cat, one sed and one awk.
 */
export const STEP_REAPER_SCRIPT = String.raw`[ -n "$XDG_RUNTIME_DIR" ] || XDG_RUNTIME_DIR=/run/user/1000
state=$XDG_RUNTIME_DIR/runc
(
  while sleep 1; do
    # pid ppid state comm, one line per process
    procs=$(cat /proc/[0-9]*/stat 2>/dev/null | sed -nE 's/^([0-9]+) \((.*)\) ([A-Za-z]) ([0-9]+) .*/\1 \4 \3 \2/p')
    runs=$(echo "$procs" | awk '$4 == "runc" || $4 == "buildkit-runc" { print $1 }')
    [ -n "$runs" ] || continue
    ended=""
    for r in $runs; do
      id=$(tr '\0' '\n' < "/proc/$r/cmdline" 2>/dev/null | tail -n 1)
      case $id in ""|*/*|.*) continue ;; esac
      init=$(sed -nE 's/.*"init_process_pid":([0-9]+).*/\1/p' "$state/$id/state.json" 2>/dev/null)
      [ -n "$init" ] || continue
      echo "$procs" | awk -v i="$init" -v r="$r" '$1 == i && $2 == r && $3 != "Z" { f = 1 } END { exit !f }' ||
        ended="$ended $r"
    done
    [ -n "$ended" ] || continue
    echo "$procs" | awk -v ended="$ended" '
      { pp[$1] = $2 }
      END {
        n = split(ended, e, " "); for (i = 1; i <= n; i++) top[e[i]] = 1
        for (p in pp) for (q = pp[p]; q != "" && q > 1; q = pp[q]) if (q in top) { print p; break }
      }' | while read -r p; do kill -9 "$p" 2>/dev/null; done
  done
) &
exec buildkitd "$@"
`;
