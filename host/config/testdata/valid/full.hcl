pipeline {
  name       = "full"
  on_failure = "continue"
  secrets    = ["GITHUB_TOKEN"]
}

plugin "shell" {
  source = "bin/modpipe-plugin-shell"
  args   = ["--quiet"]
  env    = { LEVEL = "debug" }
  sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
}

variable "greeting" {
  type    = string
  default = "hello"
}

variable "targets" {
  type    = list(string)
  default = ["linux", "macos"]
}

variable "token" {
  type      = string
  default   = "s3cret"
  sensitive = true
}

locals {
  message = "${local.prefix}: ${var.greeting}"
}

locals {
  prefix  = upper(env("STAGE"))
  content = file("../files/greeting.txt")
  os      = run.os
}

limit "heavy" {
  max = 2
}

distributed {
  capabilities       = ["docker"]
  heartbeat_interval = "2s"
  heartbeat_timeout  = "10s"
  capability_timeout = "5m"
  coordinator        = "etcd"
  etcd {
    endpoints = ["127.0.0.1:2379"]
    prefix    = "/modpipe"
    ca_file   = "certs/ca.pem"
  }
}

module "shell" "checkout" {
  command  = ["git", "rev-parse", "HEAD"]
  priority = 10
  category = "setup"
}

module "shell.exec" "build" {
  script         = "make build"
  depends_on     = [module.checkout]
  timeout        = "10m"
  always_run     = false
  ignore_failure = true
  pin_to_master  = true
  requires       = ["docker", "linux"]
  limits         = ["heavy"]
  not_in_parallel = ["db", "ports"]
  retry {
    attempts = 3
    backoff  = "2s"
  }
}

module "shell" "test" {
  matrix  = var.targets
  script  = "echo ${matrix.target} ${module.build.value.stdout}"
  run_if  = module.checkout.status == "succeeded" && run.os != "plan9"
  env     = { SHA = module.checkout.value.stdout }
  not_in_parallel = true
}

module "shell" "cross" {
  matrix {
    target  = ["linux", "windows"]
    go      = ["1.25", "1.26"]
    exclude = [{ target = "windows", go = "1.25" }]
  }
  script = "go${matrix.go} test for ${matrix.target}: ${module.test["linux"].value.stdout}"
}
