# Both modules run on worker 1, the only instance with "docker". flaky
# fails its first attempt and succeeds on its second; broken fails both
# of its attempts.
variable "dir" {
  type = string
}

pipeline {
  on_failure = "continue"
}

module "shell" "flaky" {
  requires = ["docker"]
  script   = "if [ -e '${var.dir}/flag' ]; then echo ok-now; else touch '${var.dir}/flag'; echo 'first fails' >&2; exit 1; fi"
  retry {
    attempts = 3
  }
}

module "shell" "broken" {
  requires = ["docker"]
  script   = "echo 'always fails' >&2; exit 1"
  retry {
    attempts = 2
  }
}
