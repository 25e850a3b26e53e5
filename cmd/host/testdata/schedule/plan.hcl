# The plan --dry-run prints: waves, the meta-arguments that shape the
# schedule, and what would be skipped and why. Run with
# --capability sparc --var marker=PATH; nothing may run, so the marker
# file must not appear.
pipeline {
  name = "plan"
}

variable "marker" {
  type = string
}

variable "publish" {
  type    = bool
  default = false
}

limit "heavy" {
  max = 2
}

module "shell" "touch" {
  script   = "touch '${var.marker}'"
  priority = 5
}

module "testkit.sleep" "compile" {
  matrix          = ["sparc", "vax"]
  duration        = "1s"
  limits          = ["heavy"]
  not_in_parallel = ["cpu"]
  timeout         = "10m"
}

module "testkit.sleep" "migrate" {
  duration        = "1s"
  not_in_parallel = true
  category        = "db"
  retry {
    attempts = 3
  }
}

# One instance of compile is skipped, the other runs: link still runs.
module "testkit.sleep" "link" {
  duration      = "1s"
  depends_on    = [module.compile]
  pin_to_master = true
}

module "testkit.sleep" "gpu" {
  duration = "1s"
  requires = ["gpu"]
}

module "testkit.sleep" "after_gpu" {
  duration   = "1s"
  depends_on = [module.gpu]
}

module "testkit.sleep" "publish" {
  duration   = "1s"
  run_if     = var.publish
  depends_on = [module.compile]
}

module "testkit.sleep" "notify" {
  duration      = "1s"
  run_if        = module.touch.value.exit_code == 0
  always_run     = true
  ignore_failure = true
}
