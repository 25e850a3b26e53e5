pipeline {
  name       = "continue"
  on_failure = "continue"
}

module "shell" "bad" {
  script = "echo boom >&2; exit 3"
}

module "shell" "slow" {
  script = "sleep 0.3"
}

module "shell" "after" {
  command    = ["true"]
  depends_on = [module.bad]
}

module "shell" "after_slow" {
  command    = ["true"]
  depends_on = [module.slow]
}

module "shell" "cleanup" {
  command    = ["echo", "cleaning up"]
  depends_on = [module.bad]
  always_run = true
}
