pipeline {
  name       = "summary"
  on_failure = "continue"
}

variable "greeting" {
  type    = string
  default = "hello"
}

locals {
  shout = upper(var.greeting)
}

module "shell" "producer" {
  script      = "echo '{\"sha\": \"abc123\", \"count\": 3}'"
  stdout_json = true
}

module "shell" "consumer" {
  command = ["echo", "${local.shout} sha=${module.producer.value.json.sha} count=${module.producer.value.json.count + 1}"]
}

module "testkit.dep" "reader" {
  module     = "producer"
  depends_on = [module.producer]
}

module "testkit.echo" "targets" {
  matrix = ["linux"]
  text   = "target ${matrix.target}"
}

module "shell" "skipped" {
  run_if  = false
  command = ["true"]
}

module "shell" "flaky" {
  ignore_failure = true
  script         = "echo failing; exit 4"
}

module "shell" "after" {
  depends_on = [module.flaky, module.consumer]
  command    = ["echo", "after"]
}

module "shell" "broken" {
  script = "exit 2"
}

module "shell" "never" {
  depends_on = [module.broken]
  command    = ["echo", "never"]
}
