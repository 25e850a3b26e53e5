# stuck ignores the cancellation of its timeout: its plugin is killed as
# hung after the grace period.
pipeline {
  name       = "hang-timeout"
  on_failure = "continue"
}

module "testkit.hang" "stuck" {
  message = "forever"
  timeout = "200ms"
}
