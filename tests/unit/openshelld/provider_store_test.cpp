#include "openshelld/provider_store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

using namespace openshell;
using namespace openshell::daemon;

namespace {

struct Dir {
  std::string path =
      (std::filesystem::temp_directory_path() / ("osh-providers-" + std::to_string(::getpid())))
          .string();
  Dir() { std::filesystem::create_directories(path); }
  ~Dir() { std::filesystem::remove_all(path); }
};

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("provider store: root-only records, read back validated, removed") {
  Dir state;
  auto store = ProviderStore::open(state.path);
  REQUIRE(store.ok());
  CHECK(mode_of(state.path + "/providers") == 0700);
  const providers::Provider gh{"gh", providers::Type::kGithub, {{"GITHUB_TOKEN", "ghp_s3cret"}}};
  REQUIRE(store->put(gh).ok());
  CHECK(mode_of(state.path + "/providers/gh.json") == 0600);
  auto back = store->get("gh");
  REQUIRE(back.ok());
  CHECK(back->credentials.at("GITHUB_TOKEN") == "ghp_s3cret");
  // Replacing keeps one record; an invalid provider is never written.
  REQUIRE(store->put({"gh", providers::Type::kGithub, {{"GITHUB_TOKEN", "ghp_new"}}}).ok());
  CHECK(store->get("gh")->credentials.at("GITHUB_TOKEN") == "ghp_new");
  CHECK_FALSE(store->put({"bad", providers::Type::kGeneric, {{"K", "a\nb"}}}).ok());
  CHECK_FALSE(store->exists("bad"));
  REQUIRE(store->put({"oai", providers::Type::kOpenAi, {{"OPENAI_API_KEY", "sk-1"}}}).ok());
  // A record damaged on disk is skipped and named; the others are served.
  std::ofstream(state.path + "/providers/broken.json") << "{\"name\": \"broken\"";
  std::vector<std::string> problems;
  CHECK(store->names(&problems) == std::vector<std::string>{"gh", "oai"});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("broken") != std::string::npos);
  CHECK_FALSE(store->get("../gh").ok());
  auto missing = store->get("nobody");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == std::errc::no_such_file_or_directory);
  CHECK(missing.error().message().starts_with("no provider nobody"));
  REQUIRE(store->remove("gh").ok());
  CHECK_FALSE(store->exists("gh"));
  CHECK_FALSE(store->remove("gh").ok());
  // A directory left world-readable is made root-only again.
  REQUIRE(::chmod((state.path + "/providers").c_str(), 0755) == 0);
  REQUIRE(ProviderStore::open(state.path).ok());
  CHECK(mode_of(state.path + "/providers") == 0700);
}
