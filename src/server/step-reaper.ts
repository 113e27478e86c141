/**
 * What ends a cancelled build step's processes under the rootless BuildKit daemon.
 *
 * Without a process sandbox (a container without privileges may not mount a new /proc),
 * BuildKit's steps share the daemon's PID namespace, and without a delegated cgroup runc
 * can kill only a step's first process: on a cancel, a step run as `sh -c "…"` leaves
 * its children running, holding CPU, memory and the step's mounts. In a PID namespace of
 * its own they would end with that first process; this loop gives them that end.
 *
 * It runs beside buildkitd in the daemon's own container (same user namespace, so it may
 * signal the steps and nothing outside it), once a second: every step has a mount
 * namespace of its own, and a step namespace none of whose processes descends from a
 * `runc` process (the one that runs the step and waits for it) belongs to a step that has
 * ended: each process still in it is killed. Processes of the daemon's own mount
 * namespace, and any of another user namespace (the container's first process, the
 * kubelet's probes), are never touched. POSIX sh, ls, sed and awk only: BuildKit's
 * image is Alpine's busybox.
 */

/**
 * The shell program the daemon's container runs under rootlesskit: starts the loop in the
 * background, then becomes buildkitd with the arguments after it ("$@"). Each pass is
 * four processes whatever the number of steps (ls, cat, two sed, awk).
 */
export const STEP_REAPER_SCRIPT = String.raw`self=$$
(
  while sleep 1; do
    {
      ls -l /proc/[0-9]*/ns/mnt /proc/[0-9]*/ns/user 2>/dev/null |
        sed -nE 's,.* /proc/([0-9]+)/ns/(mnt|user) -> (.*)$,\2 \1 \3,p'
      cat /proc/[0-9]*/stat 2>/dev/null |
        sed -nE 's/^([0-9]+) \((.*)\) [A-Za-z] ([0-9]+) .*/S \1 \3 \2/p'
    } | awk -v self="$self" '
      $1 == "mnt" { mnt[$2] = $3 }
      $1 == "user" { usr[$2] = $3 }
      $1 == "S" { pp[$2] = $3; c = $4; for (i = 5; i <= NF; i++) c = c " " $i; comm[$2] = c }
      END {
        m = mnt[self]; u = usr[self]; if (m == "" || u == "") exit
        for (p in mnt) {
          n = mnt[p]; if (n == m || usr[p] != u) continue
          step[n] = 1
          for (q = pp[p]; q != "" && q > 1 && !(n in live); q = pp[q])
            if (comm[q] == "runc" || comm[q] == "buildkit-runc") live[n] = 1
        }
        for (p in mnt) if ((mnt[p] in step) && !(mnt[p] in live)) print p
      }' | while read -r p; do kill -9 "$p" 2>/dev/null; done
  done
) &
exec buildkitd "$@"
`;
