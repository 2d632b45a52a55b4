// Standalone build of the lorarar Android library (android/README.md). To build it inside an app instead, include
// this folder as a module from the app's settings.gradle.kts:
//   include(":lorarar")
//   project(":lorarar").projectDir = file("<path to lorarar>/android")
// (the app's build then supplies the Android Gradle Plugin; build.gradle.kts names no version).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
    plugins {
        id("com.android.library") version "8.5.2"
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "lorarar-android"
