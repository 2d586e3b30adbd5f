#pragma once
// Image configuration (image-spec config.md; Docker's container.image.v1 read too).
//
// Kept as a JSON object so that fields we don't model (a Docker base's "container_config",
// "docker_version", config.Hostname …) survive when we build on top of a base. serialize() writes
// the known fields in the Go order of specs-go/v1 Image (v1.1.1) with its omitempty rules, then
// the unknown fields with keys sorted, as Go writes a map (docs/oci.md "Image config").

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "factory/oci/descriptor.hpp"
#include "factory/oci/json.hpp"

namespace factory::oci {

struct History {
    std::string created; // RFC 3339; "" = absent
    std::string created_by;
    std::string author;
    std::string comment;
    bool empty_layer = false;
};

class ImageConfig {
  public:
    // An empty config for platform p: architecture, os, config {}, rootfs {layers, []}.
    explicit ImageConfig(const Platform& p = host_platform());

    // Strict reader. Rejects: more than 4 MiB, invalid or duplicate-key JSON, nesting deeper than
    // 64, missing or non-string architecture/os, rootfs.type != "layers", malformed diff_ids, known
    // fields of the wrong type. expected_layers: when the manifest is known, len(diff_ids) must
    // equal its number of layers.
    static Result<ImageConfig> parse(std::string_view bytes,
                                     std::optional<std::size_t> expected_layers = std::nullopt);

    // Canonical bytes (see the file comment). No trailing newline.
    std::string serialize() const;
    // The canonical JSON value that serialize() writes.
    Json canonical_json() const;

    // The whole document, unknown fields included. Writers should prefer the setters below.
    const Json& json() const noexcept { return doc_; }
    Json& json() noexcept { return doc_; }

    std::string architecture() const;
    std::string os() const;
    std::string variant() const;
    Platform platform() const;
    void set_platform(const Platform& p);
    void set_created(std::string rfc3339); // "" removes it
    void set_author(std::string author);

    std::vector<std::string> diff_ids() const;
    // Appends a layer's DiffID ("sha256:…") and its history entry.
    void add_layer(std::string diff_id, History history);
    // Appends a history entry with empty_layer = true (a config-only step).
    void add_empty_layer_history(History history);
    std::vector<History> history() const;

    // The execution parameters (config.md "config"). Empty values remove the field.
    std::string user() const;
    void set_user(std::string user);
    std::vector<std::string> env() const;
    void set_env(const std::vector<std::string>& env);
    // Sets NAME=value, replacing an existing NAME=… entry in place or appending.
    void set_env_var(std::string_view name, std::string_view value);
    std::vector<std::string> entrypoint() const;
    void set_entrypoint(const std::vector<std::string>& argv);
    std::vector<std::string> cmd() const;
    void set_cmd(const std::vector<std::string>& argv);
    std::string working_dir() const;
    void set_working_dir(std::string dir);
    std::map<std::string, std::string> labels() const;
    void set_label(const std::string& key, std::string value);
    void set_labels(const std::map<std::string, std::string>& labels);
    std::vector<std::string> exposed_ports() const;
    void add_exposed_port(const std::string& port); // "80/tcp"
    std::vector<std::string> volumes() const;
    void add_volume(const std::string& path);
    std::string stop_signal() const;
    void set_stop_signal(std::string signal);

  private:
    ImageConfig(Json doc, int) : doc_(std::move(doc)) {}
    Json& exec_config();
    const Json* exec_config() const;

    Json doc_;
};

} // namespace factory::oci
