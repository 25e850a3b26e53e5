variable "dir" {
  type = string
}

# Hashing a huge sparse file takes minutes, far longer than the timeout:
# the host cancels the module and the plugin must stop it (not be killed
# as hung).
module "template.checksum" "huge" {
  patterns       = ["huge.bin"]
  dir            = var.dir
  timeout        = "300ms"
  ignore_failure = true
}

# Runs in the same plugin process after the cancellation.
module "template" "after" {
  template   = "still serving"
  depends_on = [module.huge]
}
