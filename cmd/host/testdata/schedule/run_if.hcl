# run_if in every form: a dependency's result, var, local, env() and the
# run's facts. A run_if that cannot be evaluated fails its module.
pipeline {
  name       = "run_if"
  on_failure = "continue"
}

variable "deploy" {
  type    = bool
  default = true
}

locals {
  mode = "full"
}

module "shell" "probe" {
  script      = "echo '{\"changed\": true, \"files\": 3}'"
  stdout_json = true
}

module "testkit.sleep" "when_changed" {
  duration = "0s"
  run_if   = module.probe.value.json.changed && module.probe.value.json.files > 2
}

module "testkit.sleep" "when_unchanged" {
  duration = "0s"
  run_if   = !module.probe.value.json.changed
}

module "testkit.sleep" "deploy" {
  duration = "0s"
  run_if   = var.deploy
}

module "testkit.sleep" "full_only" {
  duration = "0s"
  run_if   = local.mode == "full"
}

module "testkit.sleep" "quick_only" {
  duration = "0s"
  run_if   = local.mode == "quick"
}

module "testkit.sleep" "flagged" {
  duration = "0s"
  run_if   = env("SCHEDULE_TEST_FLAG") == "on"
}

module "testkit.sleep" "facts" {
  duration = "0s"
  run_if   = run.os == var.want_os && run.arch == var.want_arch && run.instance == 0 && !run.ci && contains(run.capabilities, run.os)
}

module "testkit.sleep" "in_ci" {
  duration = "0s"
  run_if   = run.ci
}

module "testkit.sleep" "broken" {
  duration = "0s"
  run_if   = module.probe.value.json.missing
}

module "testkit.sleep" "not_bool" {
  duration = "0s"
  run_if   = module.probe.value.json.files
}

variable "want_os" {
  type = string
}

variable "want_arch" {
  type = string
}
