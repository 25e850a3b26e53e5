# A secret in a line longer than the plugins' 64 KiB pieces, after pad
# bytes of x, on stdout and on stderr: pad decides where the cut falls,
# before, inside or after the secret. The module fails so that stderr's
# tail reaches the report as well.
pipeline {
  secrets = ["LONG_TOKEN"]
}

variable "pad" {
  type = number
}

module "shell" "long" {
  script = "for s in 1 2; do head -c ${var.pad} /dev/zero | tr '\\0' x; printf '%s END\\n' \"$LONG_TOKEN\"; done; exec 1>&2; for s in 1 2; do head -c ${var.pad} /dev/zero | tr '\\0' y; printf '%s END\\n' \"$LONG_TOKEN\"; done; exit 3"
}
