# The first attempt of victim announces where it runs and then blocks,
# so the test can kill that member; a later attempt succeeds at once.
variable "dir" {
  type = string
}
variable "attempts" {
  type = number
}

module "shell" "victim" {
  requires = ["alpha"]
  retry {
    attempts = var.attempts
  }
  script = "if [ -e '${var.dir}/first' ]; then echo second; exit 0; fi; touch '${var.dir}/first'; echo ${run.instance} > '${var.dir}/running.tmp'; mv '${var.dir}/running.tmp' '${var.dir}/running'; sleep 600"
}
