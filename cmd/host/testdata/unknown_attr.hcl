module "shell" "typo" {
  comand = ["true"]
}
