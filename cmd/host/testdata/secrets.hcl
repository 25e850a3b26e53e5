# Secrets end to end: a sensitive variable and an environment secret reach
# modules, which print them whole, in pieces and in their errors; the host
# must show *** everywhere instead.
pipeline {
  name       = "secrets"
  on_failure = "continue"
  secrets    = ["DEPLOY_KEY"]
}

variable "token" {
  type      = string
  sensitive = true
  default   = "hunter2"
}

variable "db" {
  type      = object({ user = string, password = string })
  sensitive = true
  default   = { user = "svc-reader", password = "pa55-w0rd-db" }
}

# The variable as part of the module's config, printed whole.
module "shell" "echo_var" {
  script = "echo token=${var.token} password=${var.db.password}"
}

# The environment secret, written in two chunks with a pause between, so
# it reaches the plugin's reader in two reads.
module "shell" "split" {
  script = "printf 'key=%s' \"$(printf '%s' \"$DEPLOY_KEY\" | cut -c1-6)\"; sleep 0.1; printf '%s\\n' \"$(printf '%s' \"$DEPLOY_KEY\" | cut -c7-)\""
}

# Longest first: DEPLOY_KEY contains the token; it must be masked whole,
# not as ***-deploy-key.
module "shell" "overlap" {
  script = "echo \"both: $DEPLOY_KEY and ${var.token}\""
}

# A failure whose stderr tail and result carry the secrets.
module "shell" "fails" {
  script = "echo \"denied for $DEPLOY_KEY\" >&2; echo \"user ${var.db.user}\"; exit 3"
}

# A secret with a quote and a backslash, which errors quote escaped
# (command "/no/such/s3\"cr\\et" not found).
variable "quoted" {
  type      = string
  sensitive = true
  default   = "s3\"cr\\et"
}

module "shell" "quoted" {
  command = ["/no/such/${var.quoted}"]
}
