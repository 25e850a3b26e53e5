pipeline {
  name       = "stop"
  on_failure = "stop"
}

module "shell" "bad" {
  script = "echo boom >&2; exit 3"
}

module "shell" "slow" {
  script = "sleep 30"
}

module "shell" "after" {
  command    = ["true"]
  depends_on = [module.bad]
}

module "shell" "cleanup" {
  command    = ["echo", "cleaning up"]
  depends_on = [module.bad]
  always_run = true
}
