// The single place the project's version is written (pyproject.toml and
// CMakeLists.txt read it from here).
#pragma once
#define LORARAR_VERSION_STRING "0.1.0"
