module "shell" "hello" {
  command = ["echo", "hello"]
}
