export default {
  pair_title: "配对闸机", pair_hint: "输入管理员给出的配对码", pair_button: "配对", paired_bad: "配对码无效、已使用或已过期",
  scan_hint: "扫码（扫码枪或摄像头）", admit: "通行", deny: "禁止", online: "在线", offline: "离线",
  bundle_age: "离线数据 {m} 分钟前", bundle_none: "无离线数据", bundle_expired: "离线数据已过期，无法离线判定",
  queue: "待上传 {n}", occupancy: "在场 {o} / {c}", dir_in: "入", dir_out: "出", annul: "撤销上次通行",
  annulled: "已撤销", synced: "已上传 {n} 条离线记录", conflicts: "冲突（请人工核查）",
  status: { green: "绿码", yellow: "黄码", red: "红码" },
  reasons: {
    ok: "验证通过", code_malformed: "无法识别的码", signature_invalid: "签名无效（伪造码）", unknown_key: "未知签发密钥",
    code_expired: "码已过期，请刷新", code_not_yet_valid: "码尚未生效", code_revoked: "码已作废", code_replayed: "码已被使用",
    status_changed: "健康状态已变更，请刷新", status_not_allowed: "健康码颜色不允许入场", under_min_age: "未满年龄要求",
    reservation_required: "需要预约", already_inside: "已在场内", reentry_not_allowed: "今日不可再次入场", venue_full: "场馆已满",
  },
};
