#include <linux/landlock.h>

#include <catch2/catch.hpp>

#include "sys/landlock.hpp"

using namespace openshell::sys;

TEST_CASE("Landlock access masks follow the ABI") {
  CHECK(landlock_handled_fs(0) == 0);
  CHECK(landlock_handled_fs(1) == (1ULL << 13) - 1);
  CHECK(landlock_handled_fs(2) == (1ULL << 14) - 1);  // + REFER
  CHECK(landlock_handled_fs(3) == (1ULL << 15) - 1);  // + TRUNCATE
  CHECK(landlock_handled_fs(4) == (1ULL << 15) - 1);  // ABI 4 adds network rights only
  CHECK(landlock_handled_fs(5) == (1ULL << 16) - 1);  // + IOCTL_DEV
  CHECK(landlock_handled_fs(7) == (1ULL << 16) - 1);
  CHECK(landlock_read_exec(1) ==
        (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR));
  CHECK((landlock_device_rw(5) & LANDLOCK_ACCESS_FS_MAKE_REG) == 0);
  CHECK((landlock_device_rw(5) & (1ULL << 15)) != 0);
  CHECK((landlock_device_rw(3) & (1ULL << 15)) == 0);
}

TEST_CASE("rules on files keep only file rights") {
  const uint64_t all = landlock_read_write(5);
  const uint64_t file = landlock_file_only(all);
  CHECK((file & LANDLOCK_ACCESS_FS_READ_DIR) == 0);
  CHECK((file & LANDLOCK_ACCESS_FS_MAKE_DIR) == 0);
  CHECK((file & LANDLOCK_ACCESS_FS_WRITE_FILE) != 0);
  CHECK((file & LANDLOCK_ACCESS_FS_EXECUTE) != 0);
}

TEST_CASE("the kernel's Landlock ABI is read, not assumed") {
  const int abi = landlock_abi();
  CHECK(abi >= 0);
  CHECK(abi < 100);
}
