# A plugin that writes a secret to its own stderr, as a third-party
# plugin's log.Printf would: the host logs the plugin's lines (at debug),
# and must show *** there too. The secret has a quote in it, which a JSON
# log line escapes.
pipeline {
  name = "secrets-log"
}

variable "token" {
  type      = string
  sensitive = true
  default   = "hunter2\"in-a-log"
}

module "testkit.exit" "dies" {
  code    = 4
  message = "login with ${var.token} refused"
}
