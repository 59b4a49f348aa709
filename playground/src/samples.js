// A first program for each language the editor knows: it reads a name on stdin and greets it.
const SAMPLES = {
  py: 'name = input("")\nprint(f"Hello, {name}!")\n',
  java: [
    "import java.util.Scanner;",
    "",
    "public class Main {",
    "    public static void main(String[] args) {",
    "        String name = new Scanner(System.in).nextLine();",
    '        System.out.println("Hello, " + name + "!");',
    "    }",
    "}",
    "",
  ].join("\n"),
  c: [
    "#include <stdio.h>",
    "",
    "int main(void) {",
    "    char name[100];",
    '    if (scanf("%99s", name) != 1) return 1;',
    '    printf("Hello, %s!\\n", name);',
    "    return 0;",
    "}",
    "",
  ].join("\n"),
  cpp: [
    "#include <iostream>",
    "#include <string>",
    "",
    "int main() {",
    "    std::string name;",
    "    std::getline(std::cin, name);",
    '    std::cout << "Hello, " << name << "!" << std::endl;',
    "}",
    "",
  ].join("\n"),
  js: 'const name = require("fs").readFileSync(0, "utf8").trim();\nconsole.log(`Hello, ${name}!`);\n',
  go: [
    "package main",
    "",
    'import "fmt"',
    "",
    "func main() {",
    "\tvar name string",
    "\tfmt.Scan(&name)",
    '\tfmt.Printf("Hello, %s!\\n", name)',
    "}",
    "",
  ].join("\n"),
  rs: [
    "use std::io;",
    "",
    "fn main() {",
    "    let mut name = String::new();",
    "    io::stdin().read_line(&mut name).unwrap();",
    '    println!("Hello, {}!", name.trim());',
    "}",
    "",
  ].join("\n"),
  rb: 'name = gets.to_s.strip\nputs "Hello, #{name}!"\n',
  sh: 'read -r name\necho "Hello, $name!"\n',
};

export const SAMPLE_INPUT = "world";

/** The sample program for a grammar key (editor.js), or "" when there is none. */
export function sampleFor(grammar) {
  return SAMPLES[grammar] ?? "";
}
