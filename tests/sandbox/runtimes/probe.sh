# /bin/sh under the sandbox: pipes, subshells, background jobs, redirection.
cd /tmp
printf 'b\na\nc\n' > list
sorted=$(sort < list | tr '\n' ' ')
( sleep 0; echo sub ) > sub.txt &
wait
count=$(ls /usr/bin | head -n 3 | wc -l)
printf '{"sorted": "%s", "subshell": "%s", "count": %s, "uid": %s}\n' "$sorted" "$(cat sub.txt)" "$count" "$(id -u)" >&3
