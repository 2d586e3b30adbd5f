#include "factory/registry/blob_progress.hpp"

namespace factory::registry {

namespace {

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

} // namespace

std::string rate_text(std::uint64_t bytes, double secs) {
    if (secs <= 0.001 || bytes == 0) return "";
    return human_size(static_cast<std::uint64_t>(static_cast<double>(bytes) / secs)) + "/s";
}

BlobProgress::BlobProgress(Progress* progress, std::string kind, const oci::Descriptor& d)
    : progress_(progress), kind_(std::move(kind)),
      digest_(d.digest.size() > 19 ? d.digest.substr(0, 19) : d.digest),
      size_(d.size > 0 ? static_cast<std::uint64_t>(d.size) : 0),
      start_(std::chrono::steady_clock::now()) {
    id_ = kind_ + " " + digest_;
    live_ = progress_ && progress_->mode() == ProgressMode::tty;
    if (live_) progress_->step_start(id_, human_size(size_));
}

BlobProgress::~BlobProgress() {
    if (live_ && !finished_) progress_->step_failed(id_, "interrupted");
}

void BlobProgress::add(std::uint64_t n) {
    auto moved = moved_ += n;
    if (!live_) return;
    auto now = now_ns();
    auto last = last_update_ns_.load();
    if (now - last < 100'000'000 || !last_update_ns_.compare_exchange_strong(last, now)) return;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    auto rate = rate_text(moved, secs);
    progress_->step_status(id_, "· " + human_size(std::min(moved, size_)) +
                                    (rate.empty() ? "" : ", " + rate));
}

void BlobProgress::done(const std::string& outcome, std::uint64_t moved) {
    finished_ = true;
    if (!progress_) return;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    auto rate = moved > 0 ? rate_text(moved, secs) : "";
    if (live_) {
        progress_->step_done(id_, (outcome.empty() ? std::string("done") : outcome) +
                                      (rate.empty() ? "" : ", " + rate));
        return;
    }
    progress_->event(kind_, digest_ + " " + human_size(size_) +
                                (outcome.empty() ? "" : " " + outcome) +
                                (rate.empty() ? "" : ", " + rate));
}

} // namespace factory::registry
