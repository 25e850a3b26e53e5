# WORKER_TOKEN is a secret only the worker (capability "docker") has in
# its environment. "push" prints it on stdout, inside a JSON document on
# stdout (where JSON escapes it) and on stderr, then fails; "show" runs
# on the master and prints push's value. Neither the master's console
# nor its report may hold the token.

pipeline {
  name       = "fleet-worker-secret"
  secrets    = ["WORKER_TOKEN"]
  on_failure = "continue"
}

distributed {
  heartbeat_interval = "200ms"
  heartbeat_timeout  = "2s"
  capability_timeout = "1m"
}

module "shell" "push" {
  requires = ["docker"]
  command  = ["sh", "-c", "echo token is $WORKER_TOKEN; printf '{\"t\":\"%s\"}\\n' \"$(printf %s \"$WORKER_TOKEN\" | sed 's/[\\\\\"]/\\\\&/g')\"; echo err $WORKER_TOKEN >&2"]
}

module "shell" "show" {
  pin_to_master = true
  command       = ["echo", "pushed: ${module.push.value.stdout}"]
}
