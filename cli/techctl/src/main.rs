fn main() -> std::process::ExitCode {
    techctl::main()
}
