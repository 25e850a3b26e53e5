variable "dir" {
  type = string
}

# Fails twice, then succeeds: the counter lives in a file.
module "shell" "flaky" {
  script = "n=$(cat ${var.dir}/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${var.dir}/count; echo attempt $n; [ $n -ge 3 ]"

  retry {
    attempts = 3
    backoff  = "10ms"
  }
}

module "shell" "never" {
  script = "exit 1"

  retry {
    attempts = 2
    backoff  = "10ms"
  }
  ignore_failure = true
}
