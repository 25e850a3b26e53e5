module "shell" "ok" {
  command = ["true"]
}

module "shell" "broken" {
  command = ["true"
}
